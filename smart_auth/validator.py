"""DOT's OAUTH2_VALIDATOR_CLASS: where SMART's rules plug into django-oauth-toolkit."""
from __future__ import annotations

from oauth2_provider.oauth2_validators import OAuth2Validator


class SmartValidator(OAuth2Validator):
    """SMART App Launch rules on top of DOT's validator (filled in by the SMART work)."""
