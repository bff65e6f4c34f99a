"""The run folder: the files that training writes and sampling and export read.

``run_dir`` (the folder layout: RunPaths, run_dir_for, run_name_for), ``checkpoint`` (checkpoint
files and RNG state), ``sample_files`` (SampleFile and the .nii.gz / .png writers), ``atomic``
(crash-safe writes) and ``errors`` (RunError). ``ddpm.train``, ``ddpm.sample`` and
``ddpm.export`` stand on this package; it imports none of them.
"""
