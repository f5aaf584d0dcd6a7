"""The campaign file as the CLI loads it: the config, and its compensation policy checked at once.

`CampaignConfig` sits at the bottom of the package and knows nothing of offers; the policy it names is
loaded here, in the app shell, so a missing or bad policy fails before any work is done, naming the
campaign file that pointed at it.
"""

from __future__ import annotations

from pathlib import Path

from winback.config import CampaignConfig
from winback.errors import ConfigError
from winback.offers.policy import load_policy


def load_campaign(path: Path | None) -> CampaignConfig:
    """The campaign config at `path` (the defaults without one), its `policy_file` loaded once to check it.

    Parameters
    ----------
    path
        A campaign YAML file, or None for the built-in defaults.

    Returns
    -------
    CampaignConfig
        The validated config; a bad file, or a policy file that is missing or bad, raises a ValueError
        (a `ConfigError` for the policy) whose one line names the campaign file.
    """
    if path is None:
        return CampaignConfig()
    config = CampaignConfig.from_yaml(path)
    try:
        load_policy(config.policy_file)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"campaign config {path}: policy_file: {exc}") from exc
    return config
