"""The synthetic depth-people generator behind ``data=synth``: HUMAN4D-like depth with exact ground truth.

The world of one config: subjects with their own proportions (:mod:`heatlit.body.shape`), each captured
(like a HUMAN4D session) by four depth cameras on a circle 2.5-4 m around them, 1-2 m high, looking at the
body; procedural activities plus real motion capture (CMU 01_01, retargeted) drive the bodies; a z-buffer
renders capsule and ellipsoid bodies over a floor and a wall; sensor noise and edge dropout are added;
depth is stored as uint16 in 100 um units like HUMAN4D. Images are the reproduction's 320x160 centre crop of
a 320x180 sensor image, resampled to any ``width x height`` with the intrinsics scaled to match, so the
ground truth stays exact at every resolution (a heatmap-stride sweep needs nothing else).

Modules, in the order the data flows:

- :mod:`.bvh`: reading motion capture (BVH) and its forward kinematics;
- :mod:`.motion`: forward kinematics and procedural activities;
- :mod:`.mocap`: a BVH clip retargeted onto a body;
- :mod:`.scene`: a posed body (and props) as primitives;
- :mod:`.render`: the z-buffer renderer and the sensor's artefacts;
- :mod:`.config`: every setting that changes the bytes, and the cache key built from them;
- :mod:`.world`: subjects, cameras, rooms and the sample plan of each split;
- :mod:`.cache`: rendering every split once into ``<data_dir>/synth-<hash>/`` and verifying it;
- :mod:`.crowd`: several people per frame (the multi-person layout, ``<data_dir>/synth_multi-<hash>/``).

:class:`heatlit.data.synth.SynthSource` (and ``SynthMultiSource``) read the cache as a data source.
"""
