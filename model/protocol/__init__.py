"""The wire vocabulary both sides speak: entity kinds, answer states, exchange outcomes, the
entities and their JSON codec, and the root of every domain error."""
