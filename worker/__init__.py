"""DDPM Studio workers: Celery glue that turns job rows into engine runs (no model code here).

`python -m worker` starts one worker. Keep this module import-free: the training child process
(multiprocessing spawn) imports it too.
"""
