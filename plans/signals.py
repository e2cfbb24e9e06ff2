"""Hooks the plan catalogue offers the layers above it.

The catalogue sits below the key contexts that cache its values, so it cannot
call their invalidation itself: it announces the change and apikeys, which
connects at start (apikeys.apps), drops what it cached.
"""

from django.dispatch import Signal

# Sent when a change alters the limits or standing that API keys are enforced
# with (a tier's quota, burst, price...), with `tiers`: the tiers changed.
# Receivers run after commit themselves.
limits_changed = Signal()
