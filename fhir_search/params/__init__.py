"""The search parameter types, one module each, looked up by the R4 type name."""
from __future__ import annotations

from fhir_search.params.base import Env, ParamType, Unsupported
from fhir_search.params.composite import CompositeParam
from fhir_search.params.date import DateParam
from fhir_search.params.number import NumberParam
from fhir_search.params.quantity import QuantityParam
from fhir_search.params.reference import ReferenceParam
from fhir_search.params.special import SPECIAL, SpecialParam
from fhir_search.params.string import StringParam
from fhir_search.params.token import TokenParam
from fhir_search.params.uri import UriParam

TYPES: dict[str, ParamType] = {
    t.name: t
    for t in (StringParam(), TokenParam(), DateParam(), NumberParam(), QuantityParam(), ReferenceParam(),
              UriParam(), CompositeParam())
}


def param_type(param) -> ParamType | None:
    """The type module of a parameter; the special ones (_id, _lastUpdated...) first."""
    special = SPECIAL.get(param.code)
    if special is not None:
        return special
    return TYPES.get(param.type)


__all__ = ["Env", "ParamType", "SpecialParam", "TYPES", "Unsupported", "param_type"]
