"""Settings of the Slack application itself (the retriever's live in retrieval/settings.py)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from retrieval.settings import Section


class SlackSettings(Section):
    max_file_mb: float = Field(50.0, gt=0, description="Largest file (MB) the bot downloads and indexes when shared.")
    api_retries: int = Field(3, ge=0, le=10, description="Retries of a Web API call on connection errors, 429 and 5xx.")
    redeliver_seconds: float = Field(
        30.0, gt=0, description="How often messages Slack refused after all retries are tried again."
    )
    workers: int = Field(2, ge=1, le=32, description="Threads running searches and ingests after the ack.")
    files_collection: str = Field("slack", description="Collection that papers shared as files in Slack go to.")
    update_seconds: float = Field(
        1.0, ge=0.05, le=60, description="Least time between two edits of a draft being written live in Slack "
        "(chat.update is rate limited)."
    )


class AccessRule(Section):
    channels: list[str] = Field(default_factory=list, description="Channel ids allowed; empty means every channel.")
    users: list[str] = Field(default_factory=list, description="User ids allowed; empty means every user.")

    def allows(self, user: str | None, channel: str | None) -> bool:
        return (not self.channels or channel in self.channels) and (not self.users or user in self.users)


class AccessSettings(Section):
    papers: AccessRule = Field(default_factory=AccessRule, description="Who may use /papers and @-mentions.")
    files: AccessRule = Field(default_factory=AccessRule, description="Whose shared files the bot indexes.")
    draft: AccessRule = Field(default_factory=AccessRule, description="Who may use /draft.")
    train: AccessRule = Field(default_factory=AccessRule, description="Who may use /train.")
    report: AccessRule = Field(default_factory=AccessRule, description="Who may use /report.")


class StorageSettings(Section):
    database: Path | str = Field(
        Path("index/labmate.sqlite"),
        description="The bot's own database (processed events, outgoing messages, schedules): a SQLite "
        "file path, or a PostgreSQL URL \"postgresql://user:password@host:5432/db\".")

    @field_validator("database", mode="before")
    @classmethod
    def _database(cls, value):
        from bot.db import parse_setting

        return parse_setting(value)  # a Path (SQLite, also from "sqlite:///path") or a postgresql:// URL


class WorkspaceSettings(Section):
    """The local workspace `labmate serve` opens in the browser when no Slack tokens are set."""

    channels: list[str] = Field(default_factory=lambda: ["general", "papers", "training"], min_length=1,
                                description="Channels the local workspace has (names; ids are made from them).")
    demo_sources: list[Path] = Field(default_factory=lambda: [Path("demo")],
                                     description="Files or folders indexed on the first local start when "
                                                 "the index is empty, so /papers has something to find "
                                                 "([] for none).")
    demo_collection: str = Field("demo", description="Collection the demo papers go to, so searches can "
                                 "leave them out; delete the index folder to start over without them.")


class MetricsSettings(Section):
    """`/healthz` and Prometheus `/metrics` of `labmate serve`, on a port of their own (every mode)."""

    host: str = Field("127.0.0.1", description="Address the health and metrics server listens on "
                      "(\"0.0.0.0\" to let a Prometheus on another machine scrape it).")
    port: int = Field(9464, ge=0, le=65535, description="Port of /healthz and /metrics (0 = no such server; "
                      "in HTTP mode the bot's own port answers both anyway).")


class ReportsSettings(Section):
    channel: str = Field("", description="Channel id the lab-wide scheduled reports (the weekly report) go to; "
                         "empty: no scheduled weekly report.")
    weekly: str = Field("0 9 * * MON", description="When the weekly report is posted: a cron expression "
                        "(minute hour day-of-month month day-of-week) in `timezone`.")
    daily: str = Field("0 9 * * *", description="When daily digests are posted: a cron expression in `timezone`.")
    timezone: str = Field("UTC", description="IANA time zone of the schedules and of the times reports show "
                          "(e.g. \"Europe/Berlin\").")
    channel_timezones: dict[str, str] = Field(
        default_factory=dict, description="Time zones of particular channels (channel id -> IANA name); their "
        "digests and reports are scheduled and shown in it instead of `timezone`.")
    skip_empty: bool = Field(False, description="Skip a report with nothing new (false: it says so briefly).")
    grace_seconds: int = Field(3600, ge=0, description="A run missed while the bot was down is run once on "
                               "start if at most this late; older ones are skipped (and logged).")

    @field_validator("weekly", "daily")
    @classmethod
    def _cron(cls, value: str) -> str:
        from bot.scheduler import parse_cron

        parse_cron(value)
        return value.strip()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from bot.scheduler import zone

        zone(value)
        return value

    @field_validator("channel_timezones")
    @classmethod
    def _zones(cls, value: dict[str, str]) -> dict[str, str]:
        from bot.scheduler import zone

        for name in value.values():
            zone(name)
        return value

    def timezone_of(self, channel: str | None) -> str:
        """The channel's configured time zone, else `timezone`."""
        return self.channel_timezones.get(channel or "", self.timezone)
