"""Camera side: frame sources, selection, face detection, preprocessing,
secure inference client and the pipeline that ties them to alerts.

Importing this package must never pull in ``secfepas_sdk.edge`` or any
integration plugin (a test checks it in a subprocess).
"""
