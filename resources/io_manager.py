"""Stores each asset's output (a small JSON manifest that points at the bulk data) in the
object store, under the partition's own tenant/project prefix."""

from __future__ import annotations

from typing import Any

import dagster as dg

from resources.object_store import ObjectStoreResource, ProjectStore
from resources.repository import split_partition_key


def manifest_key(asset_name: str) -> str:
    return f"manifests/{asset_name}.json"


class ObjectStoreManifestIOManager(dg.ConfigurableIOManager):
    """JSON manifests in the object store; never pickles on local disk."""

    store: ObjectStoreResource

    def _project(self, context: dg.OutputContext | dg.InputContext) -> ProjectStore:
        tenant, project = split_partition_key(context.asset_partition_key)
        return self.store.project(tenant, project)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        key = manifest_key(context.asset_key.path[-1])
        project = self._project(context)
        project.put_json(key, obj)
        context.add_output_metadata({"manifest_key": dg.MetadataValue.text(project.key(key))})

    def load_input(self, context: dg.InputContext) -> Any:
        upstream = context.upstream_output
        assert upstream is not None and upstream.asset_key is not None
        return self._project(context).get_json(manifest_key(upstream.asset_key.path[-1]))
