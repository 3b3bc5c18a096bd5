"""A small table of UCUM units with simple (linear) conversions to a canonical unit.

https://hl7.org/fhir/R4/search.html#quantity -- a server may compare quantities in canonical
units ("1 g" finds "1000 mg"). Only plain multiplicative conversions are listed; anything
else (temperatures, arbitrary units, annotations) is compared as written.
"""
from __future__ import annotations

UCUM = "http://unitsofmeasure.org"

# unit code -> (canonical unit, factor to multiply a value by)
_UNITS: dict[str, tuple[str, float]] = {
    # mass
    "kg": ("g", 1e3), "g": ("g", 1.0), "mg": ("g", 1e-3), "ug": ("g", 1e-6), "ng": ("g", 1e-9),
    # volume
    "L": ("L", 1.0), "l": ("L", 1.0), "dL": ("L", 0.1), "cL": ("L", 0.01), "mL": ("L", 1e-3),
    "ml": ("L", 1e-3), "uL": ("L", 1e-6),
    # length
    "km": ("m", 1e3), "m": ("m", 1.0), "cm": ("m", 1e-2), "mm": ("m", 1e-3), "um": ("m", 1e-6),
    "[in_i]": ("m", 0.0254), "[ft_i]": ("m", 0.3048),
    # time
    "ms": ("s", 1e-3), "s": ("s", 1.0), "min": ("s", 60.0), "h": ("s", 3600.0), "d": ("s", 86400.0),
    "wk": ("s", 604800.0),
    # mass concentration
    "g/L": ("g/L", 1.0), "g/dL": ("g/L", 10.0), "mg/dL": ("g/L", 1e-2), "mg/L": ("g/L", 1e-3),
    "ug/mL": ("g/L", 1e-3), "ug/L": ("g/L", 1e-6), "ng/mL": ("g/L", 1e-6), "mg/mL": ("g/L", 1.0),
    # substance concentration
    "mol/L": ("mol/L", 1.0), "mmol/L": ("mol/L", 1e-3), "umol/L": ("mol/L", 1e-6), "nmol/L": ("mol/L", 1e-9),
    # avoirdupois mass
    "[lb_av]": ("g", 453.59237), "[oz_av]": ("g", 28.349523125),
}


def canonical(unit: str | None) -> tuple[str, float] | None:
    """(canonical unit, factor) for a UCUM code with a simple conversion, else None."""
    if not unit:
        return None
    return _UNITS.get(unit)
