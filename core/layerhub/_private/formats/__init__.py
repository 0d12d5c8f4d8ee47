"""The model file formats: locating a model, and one reader per format (the ``.keras`` archive
and directory, Keras 2 ``.h5`` and SavedModel), each giving the loader the same record."""
