"""Wire shapes shared with the essay-processing platform: pydantic and the standard library only."""
