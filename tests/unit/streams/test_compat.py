"""Every workaround of third-party behaviour is pinned to the versions it was written for.

When a pinned library changes (constraints.txt), this fails: each workaround in
`tandem.streams.compat` must then be re-checked against the new version — still needed? still
correct? — and its `WRITTEN_FOR` updated, or the workaround dropped."""

from __future__ import annotations

import pytest

from tandem.streams import compat


def test_installed_versions_are_the_ones_the_workarounds_were_written_for() -> None:
    assert compat.version_mismatches() == []


@pytest.mark.parametrize("mod", compat.WORKAROUNDS, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_the_private_code_each_workaround_relies_on_is_still_there(mod: object) -> None:
    assert mod.UPSTREAM  # type: ignore[attr-defined]
    assert mod.check() == []  # type: ignore[attr-defined]


def test_apply_all_patches_once() -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.producer import sender

    compat.apply_all()
    compat.apply_all()
    assert sender.BACKOFF_OVERRIDE == 0.002
    assert getattr(AIOKafkaProducer, "_tandem_tracks_every_topic", False)
    send = AIOKafkaProducer.send
    compat.apply_all()
    assert AIOKafkaProducer.send is send  # not wrapped twice


def test_the_app_keeps_no_standby_table_replicas(tmp_path) -> None:
    """Faust's standby recovery can crash a worker on a rebalance (`faust_standby_seek`)."""
    from dataclasses import replace

    from tandem.streams.app import create_app
    from tandem.streams.settings import Settings

    app = create_app(replace(Settings.from_env(), data_dir=str(tmp_path), web_enabled=False))
    assert app.app.conf.table_standby_replicas == 0
