"""Run with the engine alone (tests/orchestration/test_engine_alone.py starts this):

ENGINE_ALONE=1 python -m pytest tests/engine_alone --ds tests.engine_alone.settings
"""
