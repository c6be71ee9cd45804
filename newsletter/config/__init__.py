"""Configuration: config.yaml parsed once into frozen pydantic models; all validation lives here.

`sections` holds the models (each stage's settings), `loading` reads the file and the secrets,
`dkim` holds DKIM's section and checks its private key.
"""

from newsletter.config.bounces import BouncesSection
from newsletter.config.dkim import DkimKey, DkimSection
from newsletter.config.loading import (
    Secrets,
    load_config,
    parse_config,
    require_imap_password,
    resolve_secrets,
)
from newsletter.config.sections import (
    BUILTIN_KEY_DATES,
    BUILTIN_SNAPSHOT_DIR,
    BUILTIN_SUBSCRIBERS,
    Config,
    DatabaseSection,
    DataQualitySection,
    DeliverySection,
    MarketSection,
    NewsletterSection,
    PathsSection,
    ScheduleSection,
    SmtpSection,
    StatsSection,
    SubscribersSection,
    TemplatesSection,
    WebSection,
)

__all__ = [
    "BUILTIN_KEY_DATES",
    "BUILTIN_SNAPSHOT_DIR",
    "BUILTIN_SUBSCRIBERS",
    "BouncesSection",
    "Config",
    "DataQualitySection",
    "DatabaseSection",
    "DeliverySection",
    "DkimKey",
    "DkimSection",
    "MarketSection",
    "NewsletterSection",
    "PathsSection",
    "ScheduleSection",
    "Secrets",
    "SmtpSection",
    "StatsSection",
    "SubscribersSection",
    "TemplatesSection",
    "WebSection",
    "load_config",
    "parse_config",
    "require_imap_password",
    "resolve_secrets",
]
