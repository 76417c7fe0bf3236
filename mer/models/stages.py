"""Which modules own a stage's parameters: what freezing a stage must also put in eval mode (its BatchNorm)."""

from __future__ import annotations

from torch import nn


def owning_modules(net: nn.Module, groups: dict[str, list[str]]) -> dict[str, list[nn.Module]]:
    """Per stage of `groups` (stage → parameter names of `net`), the modules that own those parameters, in order."""
    owners = {
        f"{mod_name}.{p_name}" if mod_name else p_name: module
        for mod_name, module in net.named_modules()
        for p_name, _ in module.named_parameters(recurse=False)
    }
    out: dict[str, list[nn.Module]] = {}
    for stage, names in groups.items():
        mods: list[nn.Module] = []
        for n in names:
            if owners[n] not in mods:
                mods.append(owners[n])
        out[stage] = mods
    return out
