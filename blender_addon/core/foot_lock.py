"""Foot pinning: a foot the server calls planted (protocol v3 `contacts`) stays where it was planted.

While a foot's contact probability is above `on` (released below `off`: hysteresis, so a probability hovering at the
threshold does not flicker), its ankle in `joints_3d` is replaced by the point where it was planted; the IK rig (the
capture rig's ankle targets, or a rig's foot IK controls) then bends the leg to reach it, so takes have no foot
skating. On release the ankle glides back to the measured one over `release_s` instead of jumping. Packets of
versions 1 and 2 carry no contacts: nothing is pinned. Plain Python (no bpy): the tick calls `FootLock.apply`.

A pin is on a leash of `max_offset` metres from the measured ankle: when the measured body moves farther from it than
that (a contact called while the foot travels, or a root path that drifts), the pin is dragged along at that distance
instead of stretching the leg after it. Without the leash, a walk seen from the front (CMU 131_02, where the contact
probabilities stay high through whole strides) left pins up to 0.5 m behind the body: legs dragged at full stretch.

`settle` (the panel's "Settle", off by default): a foot not pinned whose probability is between `off` and `on` keeps
a share of its lag behind the measured ankle each frame (settle x how near `on` it is), so it decelerates into the pin
instead of stopping dead, and the pin is set where it is shown; the lag stays on the leash and fades out over
`release_s` once the probability falls below `off`. On CMU validation mocap (3 px) settle 1 took the take's foot
skating from 6.1 to 5.1 mm/frame, and cost the pose 3.2 mm at the ankle (the pin keeps the lag); docs/lifting.md.
"""

from __future__ import annotations

from collections.abc import Hashable

ANKLES = (15, 16)  # COCO-17 left, right ankle
HYSTERESIS = 0.2  # a pin is released this far below the probability that set it


class FootLock:
    """Per-person pinning state: `apply(person, t)` returns the person with planted ankles pinned."""

    def __init__(self, on: float = 0.6, off: float = 0.4, release_s: float = 0.15, max_offset: float = 0.1,
                 settle: float = 0.0) -> None:
        self.on, self.off, self.release_s, self.max_offset = on, off, release_s, max_offset
        self.settle = settle
        self.reset()

    def set_threshold(self, on: float) -> None:
        """Pin from contact probability ``on``, release below ``on`` - HYSTERESIS (the panel's "Pin at")."""
        self.on, self.off = on, max(0.0, on - HYSTERESIS)

    def configure(self, settings) -> FootLock:
        """Take the panel's "Pin at" and "Settle" from the add-on's scene settings (live and on session import)."""
        self.set_threshold(settings.pin_at)
        self.settle = settings.settle_feet
        return self

    def reset(self) -> None:
        self._anchor: list[list[float] | None] = [None, None]
        self._release: list[tuple[list[float], float] | None] = [None, None]  # (pinned point, release time)
        self._shown: list[tuple[list[float], float, list[float]] | None] = [None, None]  # (shown, time, its lag)
        self._person_id: int | None = None

    @property
    def pinned(self) -> tuple[bool, bool]:
        """Whether the (left, right) ankle is pinned now."""
        return self._anchor[0] is not None, self._anchor[1] is not None

    def apply(self, person: dict, t: float) -> dict:
        """The person (a new dict if anything was pinned) with each planted ankle at its anchor."""
        joints = person.get("joints_3d")
        contacts = person.get("contacts")
        if person.get("id") != self._person_id:
            self.reset()
            self._person_id = person.get("id")
        if not joints or not contacts or len(contacts) != 2:
            self.reset()
            self._person_id = person.get("id")
            return person
        out = [list(p) for p in joints]
        for side, k in enumerate(ANKLES):
            p = contacts[side]
            anchor = self._anchor[side]
            if anchor is None and self._release[side] is None and (self.settle > 0.0 or self._shown[side]):
                out[k] = self._settle(side, out[k], p, t)
            if anchor is None and p >= self.on:
                anchor = self._anchor[side] = list(out[k])
                self._release[side] = None
                self._shown[side] = None
            elif anchor is not None and p <= self.off:
                self._release[side] = (anchor, t)
                anchor = self._anchor[side] = None
            if anchor is not None:
                offset = [a - b for a, b in zip(anchor, out[k], strict=True)]
                dist = sum(d * d for d in offset) ** 0.5
                if dist > self.max_offset:  # the leash: dragged along at max_offset from the measured ankle
                    anchor = self._anchor[side] = [b + d * self.max_offset / dist
                                                   for b, d in zip(out[k], offset, strict=True)]
                out[k] = list(anchor)
            elif self._release[side] is not None:
                pinned, t0 = self._release[side]
                # (at least 0: a packet stamped before the release, from a sender whose clock stepped back, would
                # otherwise throw the ankle out along the line from the pin, metres away)
                w = max((t - t0) / self.release_s, 0.0) if self.release_s > 0 else 1.0
                if w >= 1.0:
                    self._release[side] = None
                else:
                    out[k] = [a + (b - a) * w for a, b in zip(pinned, out[k], strict=True)]
        return {**person, "joints_3d": out}

    def _settle(self, side: int, ankle: list[float], p: float, t: float) -> list[float]:
        """The ankle shown for a foot not pinned: it keeps part of its lag behind the measured one while the contact
        probability rises towards ``on`` (decelerating into the pin), and the lag fades out once below ``off``."""
        state = self._shown[side]
        if state is None:
            self._shown[side] = (list(ankle), t, [0.0, 0.0, 0.0])
            return ankle
        shown, t0, lag = state
        if p > self.off and self.settle > 0.0:  # the measured foot's motion since the last frame is partly held back
            keep = self.settle * min((p - self.off) / max(self.on - self.off, 1e-9), 1.0)
            lag = [(a - b) * keep for a, b in zip(shown, ankle, strict=True)]
        else:  # the lag held so far fades out; the foot's own motion is shown as it is
            keep = min(max(0.0, 1.0 - (t - t0) / self.release_s), 1.0) if self.release_s > 0 else 0.0
            lag = [d * keep for d in lag]
        dist = sum(d * d for d in lag) ** 0.5
        if dist > self.max_offset:  # on the leash
            lag = [d * self.max_offset / dist for d in lag]
        out = [b + d for b, d in zip(ankle, lag, strict=True)]
        self._shown[side] = (out, t, lag) if self.settle > 0.0 or dist > 1e-6 else None
        return out


_locks: dict[Hashable, FootLock] = {}


def lock_for(key: Hashable) -> FootLock:
    """The pinning state of one driven armature (the tick's key: scene and armature session uids), so two
    performers never share a planted foot."""
    lock = _locks.get(key)
    if lock is None:
        if len(_locks) >= 64:
            _locks.clear()
        lock = _locks[key] = FootLock()
    return lock


def clear() -> None:
    """Forget every pin (Start/Stop, file loads, tests)."""
    _locks.clear()
