"""Where the stream processors find their broker and how they name themselves.

Precedence: command-line flags > environment > config file (`TANDEM_CONFIG`, key=value lines)
> defaults. Kept free of Faust imports so the CLI can print it before starting anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

DEFAULT_BROKER = "127.0.0.1:9092"
# Settings a config file or the environment may give (env: TANDEM_<KEY>, broker: TANDEM_KAFKA).
KEYS = ("broker", "topic_prefix", "app_id", "web_port", "web_enabled", "data_dir")


@dataclass(frozen=True)
class Settings:
    broker: str = DEFAULT_BROKER
    # Prefix of every topic name (isolates test runs and instances sharing a broker).
    topic_prefix: str = ""
    # Faust application id = consumer group; workers with the same id share partitions.
    app_id: str = "tandem"
    web_port: int = 6066
    web_enabled: bool = True
    data_dir: str = ".local/streams"
    # A worker that dies is replaced after this long (Kafka group session timeout).
    session_timeout_s: float = 10.0

    @property
    def broker_url(self) -> str:
        return ",".join(f"kafka://{b.strip()}" for b in self.broker.split(",") if b.strip())

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        values: dict[str, str] = {}
        cfg = env.get("TANDEM_CONFIG")
        if cfg:
            values.update(read_config_file(Path(cfg)))
        for key in KEYS:
            env_key = "TANDEM_KAFKA" if key == "broker" else f"TANDEM_{key.upper()}"
            if env_key in env:
                values[key] = env[env_key]
        parsed: dict[str, object] = dict(values)
        if "web_port" in values:
            parsed["web_port"] = int(values["web_port"])
        if "web_enabled" in values:
            parsed["web_enabled"] = values["web_enabled"].lower() in ("1", "true", "yes")
        return replace(cls(), **parsed)  # type: ignore[arg-type]


def read_config_file(path: Path) -> dict[str, str]:
    """`key = value` lines, `#` comments. Errors name the file and the line."""
    out: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read config file: {exc.strerror}") from None
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if "=" not in line:
            raise ValueError(f"{path}:{n}: expected 'key = value', got {line!r}")
        key, value = (part.strip() for part in line.split("=", 1))
        if key not in KEYS:
            raise ValueError(f"{path}:{n}: unknown key {key!r}")
        out[key] = value
    return out
