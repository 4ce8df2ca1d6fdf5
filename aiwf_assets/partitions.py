"""Partitioning shared by every daily asset (the delivery day of a landed file)."""

import dagster as dg

from aiwf_assets.settings import get_settings

daily_partitions = dg.DailyPartitionsDefinition(start_date=get_settings().partition_start)
