"""Corrections to the OpenAPI schema Litestar generates, so it says exactly what the API accepts."""

from __future__ import annotations

import annotated_types
from litestar import Litestar
from litestar.openapi.spec import Schema

from core.agents.character import StrictSchema

BOUNDS = ((annotated_types.Ge, "ge", "minimum"), (annotated_types.Le, "le", "maximum"),
          (annotated_types.Gt, "gt", "exclusive_minimum"), (annotated_types.Lt, "lt", "exclusive_maximum"))


def complete_strict_schemas(app: Litestar) -> None:
    """For the character models (which refuse unknown keys), Litestar leaves out `additionalProperties: false`
    and drops bounds equal to 0 and patterns on optional fields; put them back."""
    schemas = app.openapi_schema.components.schemas or {}
    pending: list[type[StrictSchema]] = [StrictSchema]
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        schema = schemas.get(model.__name__)
        if schema is None:
            continue
        schema.additional_properties = False
        for name, field in model.model_fields.items():
            prop = (schema.properties or {}).get(field.alias or name)
            if not isinstance(prop, Schema):
                continue
            for constraint in field.metadata:
                if getattr(constraint, "pattern", None) and prop.pattern is None:
                    prop.pattern = constraint.pattern
                for kind, attribute, key in BOUNDS:
                    if isinstance(constraint, kind) and getattr(prop, key, None) is None:
                        setattr(prop, key, float(getattr(constraint, attribute)))
