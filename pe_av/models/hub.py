"""``push_to_hub`` for pe_av models, as transformers 5.24's ``PreTrainedModel.push_to_hub``.

It creates the repository if needed, writes the model with ``save_pretrained`` (a checkpoint both
transformers and pe_av load) into a temporary directory together with a model card, and uploads that
directory in one commit with ``huggingface_hub.HfApi.upload_folder``. The model card is the repository's
own ``README.md`` when it has one (with ``tags`` added), else a new card from huggingface_hub's template
with those tags, as transformers does. Needs ``huggingface_hub`` (installed with transformers).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

__all__ = ["push_to_hub"]

_CARD_DESCRIPTION = (
    "A PE-AV model pushed to the Hub with pe_av; the checkpoint loads in transformers and in pe_av. "
    "This model card has been automatically generated."
)


def push_to_hub(
    self,
    repo_id: str,
    *,
    commit_message: str | None = None,
    commit_description: str | None = None,
    private: bool | None = None,
    token: bool | str | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    max_shard_size: int | str | None = "50GB",
    tags: list[str] | str | None = None,
) -> Any:
    """Upload the model (``config.json``, safetensors weights, ``README.md``) to the Hub repository ``repo_id``.

    Arguments as transformers': ``commit_message`` (default ``"Upload model"``, or ``"Upload <class>"`` for
    classes without "Model" in their name, such as the encoders), ``commit_description``,
    ``private`` (for a repository this creates), ``token``, ``revision`` (a branch, created if needed),
    ``create_pr``, ``max_shard_size`` (default ``"50GB"``), ``tags`` (added to the model card, after
    the class's ``model_tags``). Returns the ``CommitInfo`` of the upload.
    """
    try:
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError
    except ImportError as error:  # pragma: no cover - huggingface_hub comes with transformers
        raise ImportError("push_to_hub needs huggingface_hub: pip install huggingface_hub") from error
    from .. import __version__

    api = HfApi(library_name="pe_av", library_version=__version__)
    repo_id = api.create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
    all_tags = list(self.model_tags or [])
    for tag in [tags] if isinstance(tags, str) else tags or []:
        if tag not in all_tags:
            all_tags.append(tag)
    card = _model_card(api, repo_id, all_tags or None, token)
    with tempfile.TemporaryDirectory() as directory:
        self.save_pretrained(directory, max_shard_size=max_shard_size)
        card.save(os.path.join(directory, "README.md"))
        if revision is not None and not revision.startswith("refs/pr"):
            try:
                api.create_branch(repo_id=repo_id, branch=revision, token=token, exist_ok=True)
            except HfHubHTTPError as error:
                # a pull request on a repository we cannot write to: the branch must exist already
                if not (create_pr and getattr(error.response, "status_code", None) == 403):
                    raise
        return api.upload_folder(
            repo_id=repo_id,
            folder_path=directory,
            commit_message=commit_message if commit_message is not None else _default_message(type(self).__name__),
            commit_description=commit_description,
            token=token,
            create_pr=create_pr,
            revision=revision,
        )


def _default_message(class_name: str) -> str:
    return "Upload model" if "Model" in class_name else f"Upload {class_name}"


def _model_card(api: Any, repo_id: str, tags: list[str] | None, token: bool | str | None) -> Any:
    """The repository's model card with ``tags`` added, or a new one from the template."""
    from huggingface_hub import ModelCard, ModelCardData
    from huggingface_hub.errors import EntryNotFoundError

    try:
        card = ModelCard.load(api.hf_hub_download(repo_id, "README.md", token=token))
    except EntryNotFoundError:
        data = ModelCardData(tags=list(tags or []), library_name="transformers")
        card = ModelCard.from_template(data, model_description=_CARD_DESCRIPTION)
    if tags is not None:
        if card.data.tags is None:
            card.data.tags = []
        card.data.tags += [tag for tag in tags if tag not in card.data.tags]
    return card
