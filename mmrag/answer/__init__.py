"""Answers: pack the retrieved context, generate, cite; video QA under `answer.video`."""
