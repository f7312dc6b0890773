"""Running batch stages on a Ray cluster: connecting (``cluster``) and a pool of actors that
maps rows through a stage (``actors``). The stages' actors live beside their local twins
(``indexer.ray_encode``, ``search.ray_export``), so imports keep pointing one way."""
