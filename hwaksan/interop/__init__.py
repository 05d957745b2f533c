"""Hugging Face diffusers interop: its pipeline folders read as hwaksan pipelines
(`diffusers_folder`, with its networks wrapped in `networks`) and hwaksan models written as its
folders (`export`). diffusers is an optional extra, imported only here and only when used."""
