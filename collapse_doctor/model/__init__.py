"""The bundled RLAN model, one file per module of docs/rlan-reference.md section 1."""

from collapse_doctor.model.rlan import RLAN, RLANOutput, build_model

__all__ = ["RLAN", "RLANOutput", "build_model"]
