"""The image and text encoders of a store, loaded lazily, with their model ids."""

from __future__ import annotations

from dataclasses import dataclass

from congruence.core.errors import ModelMismatch
from congruence.core.settings import Settings
from congruence.encoders import inference, torch_models
from congruence.encoders.base import BatchImageEncoder, ImageEncoder, TextEncoder
from congruence.store.records import Store

KNOWN_DIMS = {"efficientnet-lite0": 1280, "minilm-l6": 384}


@dataclass(frozen=True)
class ModelIds:
    image: int
    text: int
    d_image: int
    d_text: int
    image_name: str
    text_name: str

    @property
    def pooled_space(self) -> str:
        return "pooled"

    @property
    def pooled_model(self) -> str:
        return f"pooled:{self.image_name}+{self.text_name}"


class EncoderSet:
    """Loads each encoder only when something must actually be encoded."""

    def __init__(self, settings: Settings):
        self.settings = settings

    @property
    def image(self) -> ImageEncoder:
        """The PyTorch image encoder (differentiable: the explanations need it)."""
        return torch_models.image_encoder(self.settings.image_encoder, self.settings.device)

    @property
    def image_infer(self) -> BatchImageEncoder:
        """The image encoder for embedding (ingest, Ray): ONNX Runtime on the CPU, same vectors."""
        s = self.settings
        return inference.inference_image_encoder(s.image_encoder, s.device, s.cpu_runtime)

    @property
    def text(self) -> TextEncoder:
        """The text encoder (ONNX Runtime on the CPU where it has a graph, same vectors)."""
        s = self.settings
        return inference.inference_text_encoder(s.text_encoder, s.device, s.cpu_runtime)

    def _dim(self, store: Store, role: str, name: str) -> int:
        row = store.conn.execute(
            "SELECT dim FROM models WHERE role = %s AND name = %s AND version = ''", (role, name)
        ).fetchone()
        if row:
            return int(row[0])
        if name in KNOWN_DIMS:
            return KNOWN_DIMS[name]
        return (self.image if role == "image" else self.text).dim

    def model_ids(self, store: Store) -> ModelIds:
        """Register (or find) both encoders in the store; refuses a store built with others."""
        s = self.settings
        store.pin_encoders(s.image_encoder, s.text_encoder)
        di, dt = self._dim(store, "image", s.image_encoder), self._dim(store, "text", s.text_encoder)
        return ModelIds(
            image=store.model_id("image", s.image_encoder, di),
            text=store.model_id("text", s.text_encoder, dt),
            d_image=di,
            d_text=dt,
            image_name=s.image_encoder,
            text_name=s.text_encoder,
        )

    def stored_model_ids(self, store: Store) -> ModelIds | None:
        """Both encoders as a writer registered them, read only (a serving engine never
        writes); None when none was registered yet; ModelMismatch when the store was built
        with other encoders."""
        s = self.settings
        meta = store.meta_values(["image_encoder", "text_encoder"])
        for key, value in (("image_encoder", s.image_encoder), ("text_encoder", s.text_encoder)):
            if meta.get(key, value) != value:
                raise ModelMismatch(
                    f"this store's vectors were made by {key.replace('_', ' ')} {meta[key]!r}, not {value!r}:"
                    " use the same encoder, or a new CONGRUENCE_HOME / DATABASE_URL"
                )
        image, text = store.find_model("image", s.image_encoder), store.find_model("text", s.text_encoder)
        if image is None or text is None:
            return None
        return ModelIds(image[0], text[0], image[1], text[1], s.image_encoder, s.text_encoder)
