"""The embedded index on disk: layout and file formats (files), manifest, build, load, the FAISS half
(dense) and lazily parsed records (lazy). The read side is :class:`qa.stores.embedded.EmbeddedStore`."""
