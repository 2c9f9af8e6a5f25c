"""Idempotent set-up of what the deployments need: the process work pool.

Run it as often as you like (``make worker`` does): an existing pool is left
as it is. ``python -m deployments.setup [--pool NAME]``.
"""

from __future__ import annotations

import argparse
import asyncio

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists

DEFAULT_POOL = "replenish-process"


async def ensure_work_pool(name: str = DEFAULT_POOL, concurrency: int | None = 2) -> bool:
    """Create the process work pool ``name`` if it does not exist; True if created."""
    async with get_client() as client:
        try:
            await client.create_work_pool(
                WorkPoolCreate(
                    name=name,
                    type="process",
                    concurrency_limit=concurrency,
                    description="replenish flows, run as local processes",
                )
            )
        except ObjectAlreadyExists:
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pool", default=DEFAULT_POOL)
    args = parser.parse_args()
    created = asyncio.run(ensure_work_pool(args.pool))
    print(f"work pool {args.pool!r} " + ("created" if created else "already exists"))


if __name__ == "__main__":
    main()
