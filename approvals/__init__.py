"""The approval engine (chains as data, Prefect pause/resume forms). Built in a later issue."""
