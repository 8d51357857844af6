"""The one settings object: environment variables ``VIGIL_*``, optionally a YAML file.

Precedence, highest first: arguments to ``Settings(...)``, environment variables, the YAML file named by
``VIGIL_CONFIG`` (keys are the field names, e.g. ``kafka_bootstrap:``), the defaults below.
Secrets are ``SecretStr``: they never appear in ``repr``, logs or ``vigil status``.
"""
from __future__ import annotations

import ipaddress
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_origin

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from detectors.configs import (
    DetectorConfig,
    FaceForgeryConfig,
    IdentityConfig,
    NonverbalConfig,
    VoiceSyntheticConfig,
)

from ._exceptions import ConfigError

__all__ = ["Settings", "get_settings", "load_settings", "DEFAULT_MEDIA_STORE"]

DEFAULT_KAFKA_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_ES_URL = "https://127.0.0.1:9200"
DEFAULT_MEDIA_STORE = str(Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local/share")) / "vigil" / "media")
DEFAULT_MAX_DOWNLOAD_MB = 200
DEFAULT_MAX_DURATION_S = 1800
DEFAULT_MAX_HEIGHT = 720
DEFAULT_CRAWL_SCHEDULE = "*/30 * * * *"
# calibrated on tests/airflow/data/relevance_titles.yaml: political titles >= 0.29, others <= 0.22 (16 languages)
DEFAULT_RELEVANCE_THRESHOLD = 0.25
DEFAULT_SPREAD_SCHEDULE = "*/5 * * * *"  # the 1 h checkpoint read within 10 %: at most 6 min late
DEFAULT_ALERT_SCHEDULE = "*/15 * * * *"

CommaList = Annotated[list[str], NoDecode]
C = TypeVar("C", bound=DetectorConfig)


class Settings(BaseSettings):
    """Everything Vigil can be configured with. Environment names are ``VIGIL_`` + the field name in capitals."""

    model_config = SettingsConfigDict(env_prefix="VIGIL_", env_nested_delimiter="__", extra="ignore", frozen=True)

    # -- Kafka
    kafka_bootstrap: str = Field(DEFAULT_KAFKA_BOOTSTRAP, description="Kafka bootstrap servers, comma-separated host:port")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ca_file: Path | None = Field(None, description="CA bundle for Kafka over SSL")
    kafka_request_timeout_ms: int = Field(30_000, gt=0)
    kafka_bootstrap_timeout_ms: int = Field(30_000, gt=0, description="how long clients retry an unreachable cluster")
    topic_jobs: str = "vigil.jobs"
    topic_results: str = "vigil.results"
    topic_dlq: str = "vigil.dlq"
    topic_partitions: int = Field(6, ge=1, description="partitions `vigil setup` gives new topics (max useful workers)")
    topic_replication: int = Field(1, ge=1, description="replication factor of new topics (3 in production)")
    worker_group: str = "vigil-workers"
    sink_group: str = "vigil-sink"

    # -- Elasticsearch
    es_url: str = Field(DEFAULT_ES_URL, description="Elasticsearch URL; comma-separate several nodes")
    es_user: str | None = None
    es_password: SecretStr | None = None
    es_api_key: SecretStr | None = Field(None, description="base64 API key; used instead of user/password")
    es_ca_file: Path | None = Field(None, description="CA certificate that signed the Elasticsearch HTTP certificate")
    es_verify_certs: bool = True
    es_request_timeout_s: float = Field(30.0, gt=0)
    es_index_prefix: str = Field("vigil", pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    es_replicas: int = Field(1, ge=0, description="replicas per shard of Vigil's indices (0 on a single node)")

    # -- media
    media_store: str = Field(DEFAULT_MEDIA_STORE, description="directory or fsspec URL (s3://…) of the media store")
    max_download_mb: int = Field(DEFAULT_MAX_DOWNLOAD_MB, gt=0)
    max_duration_s: int = Field(DEFAULT_MAX_DURATION_S, gt=0)
    max_height: int = Field(DEFAULT_MAX_HEIGHT, gt=0, description="highest video resolution downloaded (pixels)")
    download_timeout_s: float = Field(300.0, gt=0)

    watchlist_max_entries: int = Field(
        1000, ge=1, description="most entries one watchlist may have (a longer one is refused whole)")
    submit_local_roots: CommaList = Field(
        default_factory=list, description="directories `vigil submit FILE` reads from without --allow-local; "
                                          "empty = the working directory, the home directory and the temp directory")

    # -- network safety
    allowed_private_networks: CommaList = Field(
        default_factory=list, description="CIDRs exempt from the private-address refusal (comma-separated)")
    domain_allowlist: CommaList = Field(
        default_factory=list, description="hosts (and their subdomains) the crawler may fetch; empty = any public host")

    # -- crawl
    watchlist: Path | None = Field(None, description="watchlist YAML the crawl DAG reads (VIGIL_WATCHLIST)")
    crawl_schedule: str = Field(DEFAULT_CRAWL_SCHEDULE, description="cron expression or preset of the crawl DAG")
    crawl_max_downloads: int = Field(20, ge=0, description="downloads per crawl run, given to the fastest-spreading")
    crawl_queue_target: int = Field(
        200, ge=0, description="jobs waiting for the workers a run tops the queue up to: its budget is this less the "
        "workers' lag, within crawl_min_downloads..crawl_max_downloads (0: always crawl_max_downloads)")
    crawl_min_downloads: int = Field(
        2, ge=0, description="downloads a run makes however long the queue is (the most viral keep coming)")
    crawl_task_retries: int = Field(2, ge=0, description="Airflow retries of a failed crawl task (outages, not videos)")
    crawl_default_limit: int = Field(50, ge=1, description="videos taken from an entry that sets no limit")
    crawl_socket_timeout_s: float = Field(20.0, gt=0, description="network timeout of one request while crawling")
    crawl_sleep_requests_s: float = Field(0.0, ge=0, description="pause between requests to a platform")
    crawl_download_attempts: int = Field(3, ge=1, description="tries per download for transient errors")
    crawl_retry_wait_s: float = Field(2.0, ge=0, description="first wait between tries; doubles each time")
    crawl_fetch_subtitles: bool = Field(True, description="read subtitles, when a platform offers them, for relevance")
    ytdlp_extractors: CommaList = Field(
        default_factory=list, description="yt-dlp extractors allowed (e.g. generic); empty = all")
    ytdlp_version: str | None = Field(
        None, description="the yt-dlp version this deployment runs (a pin: `vigil status` fails when the installed one "
                          "differs, `infra/ytdlp-upgrade` installs it); empty = whatever is installed")
    ytdlp_cookies_file: Path | None = Field(None, description="Netscape cookies file for platforms that need a login")
    ytdlp_proxy: SecretStr | None = Field(None, description="proxy URL for yt-dlp (may hold credentials)")
    relevance_threshold: float = Field(DEFAULT_RELEVANCE_THRESHOLD, ge=0, le=1,
                                       description="political relevance below which a video is skipped")
    relevance_topics: list[str] = Field(
        default_factory=list, description="topic descriptions relevance scores against (JSON list); empty = built-in")
    relevance_keywords_file: Path | None = Field(
        None, description="YAML {language: [keywords]} added to the built-in lexicon")
    relevance_model: str | None = Field(
        None, description="sentence-transformers model directory (needs that package); empty = the bundled "
                          "multilingual Universal Sentence Encoder (numpy, no torch)")

    # -- detectors
    device: str = Field("auto", description="torch device for detectors: auto, cpu, cuda, cuda:1, …")
    detectors: CommaList = Field(
        default_factory=list, description="detectors `vigil scan` runs (comma-separated); empty = the default suite")
    sample_fps: float = Field(5.0, gt=0, le=60, description="frames per second sampled from a video for detectors")
    sample_max_side: int = Field(640, ge=64, description="long side (pixels) sampled frames are downscaled to")
    calibration_file: Path | None = Field(
        None, description="calibration JSON (Platt scaling, fusion weights, verdict thresholds); empty = packaged")

    # -- model detectors
    # Checkpoints are Hugging Face hub ids or local directories (saved with `save_pretrained`). With HF_HUB_OFFLINE=1
    # only local directories and the hub cache are used. A detector without a checkpoint is left out of the default
    # suite (none is preset: each must be validated first). Suggested public checkpoints: docs/operators/models.md.
    model_dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="weights' dtype: auto = float16 on CUDA, float32 on the CPU")

    # -- detector sections
    # One typed config per configurable detector, beside its code (detectors/configs.py). A section's field is read
    # from VIGIL_ + section + field in capitals (VIGIL_FACE_FORGERY_CHECKPOINT; the nested form
    # VIGIL_FACE_FORGERY__CHECKPOINT works too) and, in VIGIL_CONFIG's YAML, from a mapping or the flat key.
    # Checkpoints are Hugging Face hub ids or local directories; a detector without one is left out of the default
    # suite. Revisions pin them (`vigil models`; docs/operators/models.md).
    face_forgery: FaceForgeryConfig = Field(
        default_factory=FaceForgeryConfig, description="face_forgery (`FaceForgeryConfig`)")
    voice_synthetic: VoiceSyntheticConfig = Field(
        default_factory=VoiceSyntheticConfig, description="voice_synthetic (`VoiceSyntheticConfig`)")
    nonverbal: NonverbalConfig = Field(default_factory=NonverbalConfig, description="nonverbal (`NonverbalConfig`)")
    identity: IdentityConfig = Field(default_factory=IdentityConfig, description="identity (`IdentityConfig`)")

    # -- worker and sink
    worker_batch_size: int = Field(8, ge=1, description="most videos in one device step (batched across videos)")
    worker_batch_wait_s: float = Field(0.5, ge=0, description="longest a decoded video waits for a fuller batch")
    worker_decode_threads: int = Field(2, ge=1, description="threads fetching and decoding media (CPU)")
    worker_face_crops: int = Field(
        4, ge=0, le=32, description="face-crop keyframes (small JPEGs) stored beside the media per video, where the "
        "detectors fired most; 0 = none. Plots are drawn where they are viewed, never in the worker")
    worker_device_retries: int = Field(
        3, ge=1, description="transient device failures (out of memory, CUDA error) one clip may have in a worker "
        "before its job is handed back to vigil.jobs as attempt + 1")
    worker_max_buffered_mb: int = Field(
        4096, ge=1, description="decoded frames and audio waiting for the device, at most (MB); then the worker pauses")
    worker_detectors: CommaList = Field(
        default_factory=list, description="detector names this worker runs (comma-separated); empty = VIGIL_DETECTORS")
    worker_suite: str | None = Field(
        None, description="'module:callable' building the suite from settings; empty = detectors.Suite.from_settings")
    worker_max_poll_interval_ms: int = Field(
        300_000, gt=0, description="Kafka max.poll.interval.ms; the worker keeps polling (paused) while a batch runs")
    worker_session_timeout_ms: int = Field(
        10_000, ge=6_000, description="Kafka session timeout: how soon a dead worker's partitions move on")
    worker_shutdown_timeout_s: float = Field(
        60.0, ge=0, description="on SIGTERM, how long in-flight work may take to finish before it is handed back")
    retry_attempts: int = Field(
        5, ge=1, description="tries for a transient error (store, broker; a job's attempts on the device) before the DLQ")
    retry_backoff_s: float = Field(0.5, ge=0, description="first wait between tries; doubles each time")
    retry_backoff_max_s: float = Field(30.0, ge=0, description="longest wait between tries")
    sink_bulk_size: int = Field(200, ge=1, description="results per Elasticsearch bulk request")
    sink_session_timeout_ms: int = Field(
        10_000, ge=6_000, description="Kafka session timeout of the sink: how soon a dead sink's partitions move on")
    sink_flush_interval_s: float = Field(1.0, ge=0, description="longest a result waits before a bulk request")
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus metrics port of this process; 0 = off")
    log_format: Literal["text", "json"] = Field("text", description="worker and sink log lines: text or JSON")

    # -- spread and alerts
    spread_schedule: str = Field(DEFAULT_SPREAD_SCHEDULE, description="cron expression or preset of refresh_spread")
    spread_active_days: float = Field(7.0, gt=0, description="videos first seen this many days ago or less are re-polled")
    spread_max_videos: int = Field(
        500, ge=1, description="most videos re-polled per refresh (due ones, most overdue first)")
    spread_checkpoints_h: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [0.25, 1.0, 5.0, 24.0],
        description="ages (hours after publication) at which a video's counters are read again (comma-separated)")
    spread_daily_h: float = Field(24.0, gt=0, description="after the last checkpoint, a reading every this many hours")
    spread_promote_risk: float = Field(
        100.0, ge=0, description="risk (score x views per hour) from which a video is read every spread_promote_interval_h")
    spread_promote_interval_h: float = Field(1.0, gt=0, description="the most time between readings of a risky video")
    spread_deadline_share: float = Field(
        0.1, ge=0, lt=1, description="a reading later than this share of its checkpoint's age counts as missed (backlog)")
    spread_backlog_alert: int = Field(
        1, ge=0, description="missed checkpoints from which a spread refresh posts a backlog alert to alert_webhooks "
        "(0: never)")
    spread_listings: bool = Field(
        True, description="read many followed videos' counters from one listing (their channel's page, the feed "
        "they were found on) when it shows them, before reading each video's page")
    spread_listing_min_videos: int = Field(
        2, ge=1, description="fewest followed videos (one of them due) a listing must be asked for before it is read")
    spread_listing_size: int = Field(
        100, ge=1, le=5000, description="most entries taken from one listing")
    spread_min_interval_s: float = Field(
        2.0, ge=0, description="least time between two requests to the same platform host while re-polling")
    spread_host_intervals: dict[str, float] = Field(
        default_factory=dict, description='per host or platform overrides of spread_min_interval_s (JSON, e.g. {"youtube": 5})')
    spread_cookies_files: dict[str, Path] = Field(
        default_factory=dict, description="per host or platform Netscape cookies files (JSON); default ytdlp_cookies_file")
    spread_proxies: dict[str, SecretStr] = Field(
        default_factory=dict, description="per host or platform proxy URLs (JSON); default ytdlp_proxy")
    spread_baseline_videos: int = Field(
        100, ge=1, description="the channel's most recent videos whose snapshots make its expected views by age")
    spread_baseline_min_videos: int = Field(
        3, ge=1, description="fewest other videos of a channel with a snapshot at an age for an overperformance ratio")
    phash_frames: int = Field(8, ge=1, le=64, description="keyframes hashed per video for re-upload clusters")
    phash_threshold: int = Field(
        12, ge=0, le=64, description="mean Hamming distance (bits of 64) under which two videos are re-uploads")
    alert_schedule: str = Field(DEFAULT_ALERT_SCHEDULE, description="cron expression or preset of the alerts DAG")
    alert_rules: Path | None = Field(None, description="alert rules YAML; empty = infra/alerts/rules.yaml")
    alert_webhooks: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="Slack-compatible webhook URLs alerts are posted to (comma-separated; secret)")
    alert_webhook_timeout_s: float = Field(10.0, gt=0, description="timeout of one webhook request")
    alert_webhook_attempts: int = Field(3, ge=1, description="tries per webhook for transient errors")
    kibana_url: str | None = Field(None, description="Kibana URL for `vigil kibana import` (or --url)")
    kibana_user: str | None = None
    kibana_password: SecretStr | None = None
    kibana_api_key: SecretStr | None = Field(None, description="Kibana/Elasticsearch API key; used instead of user/password")
    kibana_ca_file: Path | None = Field(None, description="CA certificate of Kibana's HTTPS certificate")
    kibana_space: str | None = Field(None, description="Kibana space to import into; empty = the default space")

    # -- analyst console and `vigil standalone` (pipeline/console, pipeline/standalone)
    console_host: str = Field("127.0.0.1", description="address `vigil console` listens on")
    console_port: int = Field(8080, ge=1, le=65535, description="port `vigil console` listens on")
    console_secret_key: SecretStr | None = Field(
        None, description="key signing console session cookies (the same on every replica); empty = "
                          "VIGIL_CONSOLE_SECRET_KEY_FILE, else one generated and kept in the console's own index")
    console_secret_key_file: Path | None = Field(
        None, description="file holding the session-cookie key (a mounted Secret), read when VIGIL_CONSOLE_SECRET_KEY "
                          "is unset")
    console_session_max_age_s: int = Field(
        8 * 3600, ge=60, description="absolute lifetime of a console login (seconds), however active")
    console_session_idle_s: int = Field(
        3600, ge=60, description="a console login unused this long (seconds) ends")
    console_es_user: str | None = Field(
        None, description="Elasticsearch user of the console's own index (accounts, sessions, its key); empty = the "
                          "one `vigil setup` made (console_es_credentials_file), else VIGIL_ES_USER")
    console_es_password: SecretStr | None = None
    console_es_api_key: SecretStr | None = Field(None, description="API key for the console's own index")
    console_es_credentials_file: Path = Field(
        Path(DEFAULT_MEDIA_STORE).parent / "console-es.json",
        description="where `vigil setup` keeps the console user it made (mode 0600), when VIGIL_CONSOLE_ES_* are unset")
    console_origins: CommaList = Field(
        default_factory=list, description="origins (https://host[:port]) a state-changing console request may come "
                                          "from besides the console's own Host; for a proxy that rewrites Host")
    console_password_min_length: int = Field(12, ge=8, description="shortest console password accepted")
    console_secure_cookies: bool = Field(
        False, description="mark session cookies Secure (set when the console is served over HTTPS)")
    console_login_max_failures: int = Field(
        5, ge=1, description="failed logins per user or address within the lockout window before logins are refused")
    console_login_lockout_s: float = Field(900.0, gt=0, description="the login lockout window (seconds)")
    console_page_size: int = Field(50, ge=1, le=500, description="videos per queue page")
    console_public_url: str | None = Field(
        None, description="the console's address as its users reach it (https://host[:port]), for links sent out "
                          "(a submission's webhook); empty = http://VIGIL_CONSOLE_HOST:VIGIL_CONSOLE_PORT")
    submission_webhook_timeout_s: float = Field(
        5.0, gt=0, le=60, description="timeout of one call of a submission's webhook (the sink posts it once scored)")
    standalone_crawl_every_s: float = Field(
        1800.0, gt=0, description="`vigil standalone`: seconds between crawl cycles (the crawl DAG's 30 minutes)")
    standalone_spread_every_s: float = Field(
        300.0, gt=0, description="`vigil standalone`: seconds between spread refreshes (refresh_spread's 5 minutes)")
    standalone_alerts_every_s: float = Field(
        900.0, gt=0, description="`vigil standalone`: seconds between alert evaluations (the alerts DAG's 15 minutes)")
    standalone_local_stack: bool = Field(
        True, description="`vigil standalone` starts infra/local/stack when VIGIL_ES_URL is not set")

    @field_validator("worker_detectors", mode="before")
    @classmethod
    def _split_detector_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("allowed_private_networks", "domain_allowlist", "ytdlp_extractors", "alert_webhooks",
                     "detectors", "console_origins", "submit_local_roots", "spread_checkpoints_h", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.lstrip().startswith("["):  # a JSON list is accepted too
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("spread_checkpoints_h")
    @classmethod
    def _increasing_checkpoints(cls, value: list[float]) -> list[float]:
        if not value or value[0] <= 0 or any(b <= a for a, b in zip(value, value[1:])):
            raise ValueError(f"checkpoint ages must be positive and increasing, e.g. 0.25,1,5,24 (got {value})")
        return value

    @field_validator("allowed_private_networks")
    @classmethod
    def _valid_cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise ValueError(f"not a CIDR network: {cidr!r}") from exc
        return value

    @field_validator("domain_allowlist")
    @classmethod
    def _lower_domains(cls, value: list[str]) -> list[str]:
        return [domain.lower().lstrip(".") for domain in value]

    @model_validator(mode="after")
    def _credentials_consistent(self) -> Settings:
        if self.es_password is not None and not self.es_user:
            raise ValueError("VIGIL_ES_PASSWORD is set but VIGIL_ES_USER is not")
        if self.console_es_password is not None and not self.console_es_user:
            raise ValueError("VIGIL_CONSOLE_ES_PASSWORD is set but VIGIL_CONSOLE_ES_USER is not")
        if self.kafka_sasl_mechanism and not (self.kafka_sasl_username and self.kafka_sasl_password):
            raise ValueError("VIGIL_KAFKA_SASL_MECHANISM needs VIGIL_KAFKA_SASL_USERNAME and VIGIL_KAFKA_SASL_PASSWORD")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # each source's flat section keys (face_forgery_checkpoint) are folded into their section before the
        # sources are merged, so precedence holds between a flat name in one source and the nested one in another
        sources: list[PydanticBaseSettingsSource] = [
            _FlatSectionKeys(settings_cls, init_settings), env_settings, _FlatSectionEnv(settings_cls)]
        config_file = os.environ.get("VIGIL_CONFIG")
        if config_file:
            if not Path(config_file).is_file():
                raise ConfigError(f"VIGIL_CONFIG names {config_file!r}, which is not a file")
            yaml_source = YamlConfigSettingsSource(settings_cls, yaml_file=config_file)
            sources.append(_FlatSectionKeys(settings_cls, yaml_source))
        return tuple(sources)

    @classmethod
    def sections(cls) -> dict[str, type[DetectorConfig]]:
        """{field name: config class} of the detector sections (``face_forgery``: FaceForgeryConfig, …)."""
        return {name: field.annotation for name, field in cls.model_fields.items()
                if isinstance(field.annotation, type) and issubclass(field.annotation, DetectorConfig)}

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """{environment variable: the field it sets} of every setting, a section's fields by their documented flat
        names: ``{"VIGIL_ES_URL": "es_url", …, "VIGIL_FACE_FORGERY_CHECKPOINT": "face_forgery.checkpoint"}``."""
        sections = cls.sections()
        names: dict[str, str] = {}
        for name in cls.model_fields:
            if name in sections:
                section = sections[name]
                names.update({section.env_name(field): f"{name}.{field}" for field in section.model_fields})
            else:
                names[f"VIGIL_{name.upper()}"] = name
        return names

    def detector_config(self, config_type: type[C]) -> C:
        """The section of these settings that holds ``config_type`` (a detector's ``config_type``)."""
        for name, section_type in self.sections().items():
            if section_type is config_type:
                return getattr(self, name)  # type: ignore[no-any-return]
        raise KeyError(f"Settings has no section of type {config_type.__name__}")

    # -- derived names, so every caller spells them the same way
    def index(self, name: Literal["videos", "detections", "spread", "alerts", "verdicts", "watchlists",
                                  "watchlist-runs"]) -> str:
        """The concrete index (or, for spread, the write alias) name: ``vigil-videos`` with the default prefix."""
        return f"{self.es_index_prefix}-{name}"

    @property
    def topics(self) -> tuple[str, str, str]:
        return (self.topic_jobs, self.topic_results, self.topic_dlq)


def _fold_flat_keys(settings_cls: type[Settings], data: dict[str, Any]) -> dict[str, Any]:
    """``{"face_forgery_checkpoint": x}`` -> ``{"face_forgery": {"checkpoint": x}}``; a key the section already has
    in nested form keeps the nested value. Keys that are no section's are left as they are."""
    out = dict(data)
    for section, config_type in settings_cls.sections().items():
        prefix = section + "_"
        flat = {key: out.pop(key) for key in list(out)
                if key.startswith(prefix) and key[len(prefix):] in config_type.model_fields}
        if not flat:
            continue
        nested = out.get(section)
        if isinstance(nested, BaseModel):
            nested = nested.model_dump(exclude_unset=True)
        nested = dict(nested) if isinstance(nested, dict) else {}
        for key, value in flat.items():
            nested.setdefault(key[len(prefix):], value)
        out[section] = nested
    return out


class _FlatSectionKeys(PydanticBaseSettingsSource):
    """Another source (``Settings(...)`` arguments, the YAML file) with its flat section keys folded in."""

    def __init__(self, settings_cls: type[BaseSettings], inner: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self.inner = inner

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # unused: __call__ is overridden
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return _fold_flat_keys(self.settings_cls, self.inner())  # type: ignore[arg-type]


class _FlatSectionEnv(PydanticBaseSettingsSource):
    """``VIGIL_<SECTION>_<FIELD>`` environment variables (the documented names) into their section. Lists and
    mappings are JSON, as for top-level settings."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # unused: __call__ is overridden
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        environ = {key.upper(): value for key, value in os.environ.items()}
        out: dict[str, Any] = {}
        for section, config_type in self.settings_cls.sections().items():  # type: ignore[attr-defined]
            for name, field in config_type.model_fields.items():
                raw = environ.get(config_type.env_name(name))
                if raw is None:
                    continue
                if get_origin(field.annotation) in (list, dict) or field.annotation in (list, dict):
                    try:
                        raw = json.loads(raw)
                    except ValueError as exc:
                        raise ConfigError(
                            f"{config_type.env_name(name)} takes JSON, e.g. '[\"a\", \"b\"]': {exc}") from exc
                out.setdefault(section, {})[name] = raw
        return out


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once. Raises ConfigError with every problem listed."""
    return load_settings()


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment (and ``overrides``), translating validation errors into ConfigError."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    try:
        return Settings(**overrides)
    except SettingsError as exc:
        raise ConfigError(f"invalid settings: {exc} (list settings take JSON, e.g. '[\"a\", \"b\"]')") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"VIGIL_{'_'.join(str(p) for p in err['loc']).upper() or 'CONFIG'}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"invalid settings: {problems}") from exc
