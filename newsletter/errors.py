"""Errors raised by newsletter.

Every error the product raises on purpose derives from one base, so the CLI catches one type and
prints one line. Each message says what failed, where, and what to do about it.

* NewsletterError                 base; carries exit_code (default 1)
  x ConfigError                   bad/missing config file, unknown key, missing env secret (exit 2)
  x DataError                     market data unusable for the requested issue
    + FetchError                  a live provider gave no, partial or malformed prices
    + AsOfError                   requested --as-of outside the data or not a date (exit 2)
    + DataQualityError            the week's prices failed the data-quality gate
    + InsufficientDataError       a ticker lacks a session the statistics need
    + CorruptStoreError           the local price store file is damaged (it is rebuilt)
  x RenderError                   template folder/template missing, undefined variable
    + LintError                   the built issue has lint errors; sending is refused
    + ContentError                a subject/preheader too long or with a control character
  x SubscriberError               unreadable subscriber list or invalid row (file:line)
  x DeliveryError                 SMTP connect/auth/protocol failure (wraps the smtplib error)
  x DatabaseError                 the project database cannot be opened or used
  x IssueChangedError             a send would mail changed content to the rest of the list
  x ScheduleError                 another scheduler already runs on this project
  x MailboxError                  the bounce mailbox cannot be read (Maildir, IMAP login or TLS)
"""


class NewsletterError(Exception):
    """Base class of all errors the product raises on purpose."""

    exit_code = 1


class ConfigError(NewsletterError):
    """The configuration file is missing, malformed, or names an unset secret."""

    exit_code = 2


class DataError(NewsletterError):
    """Market data cannot support the requested issue."""


class FetchError(DataError, ConnectionError):
    """A live data provider failed, or answered with empty, partial or malformed prices."""


class AsOfError(DataError):
    """The requested as-of date cannot be served from the data."""

    exit_code = 2


class DataQualityError(DataError):
    """The week's prices failed the data-quality gate; nothing is built unless the editor allows it."""


class InsufficientDataError(DataError):
    """A ticker is missing a session that a statistic needs."""


class CorruptStoreError(DataError):
    """The local price store file is damaged."""


class RenderError(NewsletterError):
    """A template could not be found or rendered."""


class LintError(RenderError):
    """The built issue would break or clip in mail clients; it is not sent."""


class ContentError(RenderError):
    """The subject or preheader cannot go into a message as it is; nothing is built."""


class SubscriberError(NewsletterError):
    """The subscriber list cannot be read or holds an invalid row."""


class DeliveryError(NewsletterError, ConnectionError):
    """The SMTP server could not be reached, refused the login, or broke the protocol."""


class DatabaseError(NewsletterError):
    """The project database cannot be opened or used."""


class IssueChangedError(NewsletterError):
    """The issue's content changed after some subscribers received it."""


class ScheduleError(NewsletterError):
    """The scheduler cannot start (another one already runs on the same project)."""


class MailboxError(NewsletterError):
    """The bounce mailbox cannot be read: a missing Maildir, an IMAP server that cannot be
    reached, refuses the login or whose certificate does not verify."""
