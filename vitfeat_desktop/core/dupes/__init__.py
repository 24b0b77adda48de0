"""Duplicates and similar shots: evidence, verification, keeper, calibration, the staged review.

By concern (each imports only those above it in this list, so there is no cycle):

* ``records``: FileInfo, Member, DuplicateGroup, SimilarSet, the tiers; ``sidecars``: the per-library marks,
  keeper picks and verified pairs (:func:`sidecars.sidecar_path` decides where);
* ``align``, ``verify``: ORB/RANSAC alignment and the one-capture test (PairCheck), the pixel-correlation
  verifier and its cache;
* ``vectors`` (centring, k-NN, hash maths), ``geometry`` (PairChecks as arrays), ``thresholds`` (the cuts and
  the slider), ``reasons`` (the words), ``evidence`` (collecting pair evidence: the only reading of files);
* ``keeper_rules`` (the static order), ``keeper_pixels`` (measurements), ``keeper`` (the judge);
* ``finder``: DuplicateFinder; ``calibrate``: the cuts fitted to a model and a library;
* ``for_library``: from an open Library to a finder; ``review``: the staged search and the views' questions;
  ``export``: the one CSV/JSON export of the CLI and the GUI.
"""
