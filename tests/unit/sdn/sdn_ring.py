"""A 4-site ring (s1-s2-s3-s4-s1) laid out like `tandem infra wan up` lays it out."""

from tandem.sdn.paths import LinkPorts, WanLayout

RING = WanLayout(
    dpids={"s1": 1, "s2": 2, "s3": 3, "s4": 4},
    links={
        "l12": LinkPorts("l12", "s1", 2, "s2", 2),
        "l23": LinkPorts("l23", "s2", 3, "s3", 2),
        "l34": LinkPorts("l34", "s3", 3, "s4", 2),
        "l41": LinkPorts("l41", "s4", 3, "s1", 3),
    },
)
SITE_OF_DP = {v: k for k, v in RING.dpids.items()}
