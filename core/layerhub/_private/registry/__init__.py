"""The plugin registry: plugins found by their distributions' metadata (``discovery``),
imported on demand and checked (``plugins``), the hooks they implement (``hookspecs``),
what is known of each (``records``), the names a model file needs resolved against them
(``resolve``), and which Keras backend a process has (``backend``)."""
