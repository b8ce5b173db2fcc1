"""``python -m circuits``: the same as the ``circuits`` command."""

from __future__ import annotations

from circuits.launch import main

main()
