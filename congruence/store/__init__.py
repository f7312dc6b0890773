"""PostgreSQL, the system of record: the connection and the embedded server, the migrations,
the rows (``records.Store``), the vectors (``vectors.VectorStore``), and the SQL of the safety
flags, the account metrics and the collaboration graph. Nothing here imports a model or an index."""
