"""The body model shared by the synthetic generator and the HUMAN4D reader.

- :mod:`.skeleton`: the HUMAN4D joints, the 18-joint subset, bones, flip pairs, head segment;
- :mod:`.shape`: one subject's proportions and part radii (and each joint's visibility slack);
- :mod:`.camera`: the depth camera (sensor geometry, intrinsics, poses, projection, visibility).
"""
