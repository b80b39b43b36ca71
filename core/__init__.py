"""Pieces every labmate package may import: the error root. Nothing here imports a service."""
from core.errors import LabmateError, UserError

__all__ = ["LabmateError", "UserError"]
