"""The API key: required outside an explicit development mode, where the well-known key is refused too."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from result_aggregator_service.config import DEVELOPMENT_API_KEY, ConfigurationError, Environment, Settings

PRODUCTION, DEVELOPMENT = Environment.PRODUCTION, Environment.DEVELOPMENT


def test_the_environment_is_production_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESULT_AGGREGATOR_ENVIRONMENT", raising=False)
    assert Settings(_env_file=None).environment is PRODUCTION
    monkeypatch.setenv("RESULT_AGGREGATOR_ENVIRONMENT", "development")
    assert Settings(_env_file=None).environment is DEVELOPMENT


@pytest.mark.parametrize("key", [None, SecretStr("")])
def test_outside_development_a_missing_key_is_a_configuration_error_naming_what_to_set(key: SecretStr | None) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings(environment=PRODUCTION, internal_api_key=key).api_key()
    assert "RESULT_AGGREGATOR_INTERNAL_API_KEY is not set" in str(caught.value)
    assert "RESULT_AGGREGATOR_ENVIRONMENT=development" in str(caught.value)


def test_outside_development_the_development_key_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="development key"):
        Settings(environment=PRODUCTION, internal_api_key=SecretStr(DEVELOPMENT_API_KEY)).api_key()


def test_a_configured_key_is_used_in_any_environment() -> None:
    for environment in Environment:
        assert Settings(environment=environment, internal_api_key=SecretStr("s3cret")).api_key() == "s3cret"


def test_only_development_falls_back_to_the_development_key() -> None:
    assert Settings(environment=DEVELOPMENT).api_key() == DEVELOPMENT_API_KEY
