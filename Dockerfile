FROM python:3.11-slim
WORKDIR /app
# torch and torchvision pinned together so pip resolves one matching pair
RUN pip install --no-cache-dir torch==2.13.0 torchvision==0.28.0
COPY pyproject.toml README.md ./
COPY congruence ./congruence
RUN pip install --no-cache-dir .
ENV CONGRUENCE_HOME=/data
CMD ["congruence", "status"]
