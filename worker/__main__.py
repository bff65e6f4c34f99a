"""`python -m worker` starts one Celery worker (see worker/main.py).

The import sits under the guard because multiprocessing's spawn start method re-imports this
module in every training child; the child must not start a worker or import Celery.
"""
if __name__ == "__main__":
    from worker.main import main

    main()
