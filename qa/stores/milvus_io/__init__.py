"""Milvus I/O: the collections and their reads and writes (client), building and syncing an index
(sync), and Ray Data ingestion for large corpora (ray_ingest). The read side is
:class:`qa.stores.milvus.MilvusStore`."""
