"""The study: what turns the toolbox into the reproduction of the paper.

Profiles and the workflow that runs them, notebook roles, code hashing, run loading for the
tables, findings, the artefact manifest and the report. Everything else in ``panns_core``
(models, data, training, metrics, inference) is the toolbox, usable without this package.
"""
