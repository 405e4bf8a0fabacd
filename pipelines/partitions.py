"""The one partitions definition: a key per tenant-project, `<tenant>__<project>`."""

from __future__ import annotations

import dagster as dg

TENANT_PROJECT = "tenant_project"

tenant_project = dg.DynamicPartitionsDefinition(name=TENANT_PROJECT)
