"""Editing a store by hand in tests, as an attacker or a faulty tool would."""

import numpy as np
import zarr

from s2gen import store as s2store


def record_again(path: str, names=s2store.ARRAY_NAMES) -> None:
    """Record the size and CRC-32C of the shard objects of arrays ``names`` as they now are.

    Edits made through zarr change the objects' bytes; re-recording makes the
    store consistent again, so the row checks of ``validate`` (not only the
    object records) see the edit. The records are a checksum, not a signature.
    """
    group = zarr.open_group(str(path), mode="r+")
    records = group["_s2gen/objects"]
    order = group.attrs["s2gen"]["objects"]["arrays"]
    for name in names:
        column = order.index(name)
        for k in range(records.shape[0]):
            data = s2store.read_object(str(path), s2store._shard_key(group[name], k))
            records[k, column] = np.array(s2store.fingerprint(None if data is None else [data]))
