"""Verification machinery: catalogue, recorder, results schema, pytest plugin, views.

Data flows one way: a catalogued claim is measured by a theorem test through a
:class:`~gradcore.verify.record.ClaimRecorder`, the plugin writes one results file,
and the report, guard and CLI are views of that file.
"""
