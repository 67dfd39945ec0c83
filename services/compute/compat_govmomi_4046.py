"""Workaround for govmomi PR #4046 ("vcsim: include VM extra config when cloning a VM"): the
vCenter simulator ignores `CloneSpec.config`.

Affected: govmomi's simulator up to and including v0.52.0 (the version infra/vcsim pins);
fixed upstream by #4046 (merged June 2026). `VirtualMachine.CloneVMTask` copies the clone
spec's ExtraConfig, NumCPUs and MemoryMB into a *copy* of the new VM's config spec, so the
clone comes out with the template's CPU and memory and without our `tandem.workload` key,
which would make it unrecognisable to a repeated command. A real vCenter applies
`CloneSpec.config` in the clone itself.

The fix: after a clone, read the VM back; only if the asked CPU, memory or ExtraConfig are
missing, apply them with one `ReconfigVM_Task`. Against a real vCenter this reads one VM and
does nothing more. Remove it when infra/vcsim pins a govmomi release with #4046.
"""

from __future__ import annotations

from typing import Any

from pyVmomi import vim as _vim

from tandem.services.compute.vsphere_session import Session

vim: Any = _vim  # pyvmomi's dynamic types are untyped for mypy


def ensure_clone_config(session: Session, content: Any, vm: Any, config: Any,
                        what: str) -> bool:
    """Reconfigure `vm` to `config` (CPU, memory, ExtraConfig, annotation) when the clone
    did not take them; True when it had to."""
    got = Session.properties(content, [vm], vim.VirtualMachine, [
        "config.hardware.numCPU", "config.hardware.memoryMB", "config.extraConfig"])
    props = got[0][1] if got else {}
    have = {o.key: str(o.value) for o in props.get("config.extraConfig") or []}
    missing = [o for o in config.extraConfig or [] if have.get(o.key) != str(o.value)]
    if (not missing and props.get("config.hardware.numCPU") == config.numCPUs
            and props.get("config.hardware.memoryMB") == config.memoryMB):
        return False
    spec = vim.vm.ConfigSpec(numCPUs=config.numCPUs, memoryMB=config.memoryMB,
                             annotation=config.annotation, extraConfig=list(missing))
    session.wait_task(content, vm.ReconfigVM_Task(spec=spec), what)
    return True
