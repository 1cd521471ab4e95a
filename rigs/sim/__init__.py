"""The simulated studio: simulated bodies, performers, their motion, and what a simulated detector sees.

Modules: ``body`` (SMPL-24 tree, landmarks of every skeleton format, capsule volumes; facing +X, left
+Y, Z up), ``rotations``, ``schedule`` (activity schedules and blends), ``motion`` (procedural joint
angles), ``paths`` (floor paths kept apart and in the area), ``performers`` (``simulate_performers``,
``keypoints3d``), ``bvh_driver`` (a BVH clip driving the body), ``occlusion``, ``detector``
(``simulate_detections``), ``recording`` (``write_simulated_keypoints``), ``truth_assignment`` (grouping
detections by performer from the truth), ``board`` (a simulated ChArUco board on the floor or held) and
``render`` (the simulated camera's images: studio, shaded bodies in depth order, the board).

Everything here is seeded and reproducible, and says "simulated" in its names and in what it writes.
"""
