"""`make demo` deletes the topics of its earlier runs, and nobody else's."""

from tandem.services.demo import _DEMO_TOPIC


def test_only_topics_named_by_an_earlier_demo_run_are_taken() -> None:
    ours = ["demo-1795622170.tandem.inventory", "demo-1795622170.tandem-app-inventory-changelog",
            "demo-1795622170.tandem.sdn.commands.ams"]
    theirs = ["demo-orders", "demo-.x", "demo-12.tandem.inventory", "tandem.inventory",
              "xdemo-1795622170.tandem.inventory", "demo-1795622170tandem.inventory"]
    assert [t for t in ours + theirs if _DEMO_TOPIC.match(t)] == ours
