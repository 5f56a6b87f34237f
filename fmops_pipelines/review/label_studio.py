"""Label Studio over its REST API: a project per task, a round's rows as tasks with the specialist's prediction as
a pre-annotation, and completed annotations back as review.annotations.Annotation.

Five calls, made with `requests`: Label Studio's SDK (2.1) pins numpy below 2.3 and brings opencv, nltk and black
into fmops's environment, and Label Studio itself runs in its own (deploy/local/label_studio.sh). The API token is
sent in a header only: no error message, log line or stored file holds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

import pandas as pd

from fmops_pipelines.errors import EnvironmentProblem
from fmops_pipelines.review.annotations import Annotation

CHOICES = "label"  # the Choices control's name in the labeling config


def label_config(label_names: list[str]) -> str:
    """The project's labeling interface: the text, why fmops asks, one choice per label."""
    choices = "".join(f"<Choice value={quoteattr(n)}/>" for n in label_names)
    return ('<View><Header value="Why fmops asks: $reason"/><Text name="text" value="$text"/>'
            f'<Choices name="{CHOICES}" toName="text" choice="single" showInline="true" required="true">'
            f"{choices}</Choices></View>")


@dataclass
class LabelStudio:
    url: str
    token: str
    timeout_s: float = 30.0

    def _call(self, method: str, path: str, **kwargs):
        import requests

        where = f"Label Studio at {self.url}"
        try:
            response = requests.request(method, f"{self.url.rstrip('/')}{path}", timeout=self.timeout_s,
                                        headers={"Authorization": f"Token {self.token}"}, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise EnvironmentProblem(f"{where} is unreachable ({type(exc).__name__}); start it with "
                                     "deploy/local/label_studio.sh start or set LABEL_STUDIO_URL") from None
        except requests.RequestException as exc:
            raise EnvironmentProblem(f"{where}: {method} {path} failed ({type(exc).__name__})") from None
        if response.status_code in (401, 403):
            raise EnvironmentProblem(f"{where} refused the API token (HTTP {response.status_code}): check "
                                     "LABEL_STUDIO_API_KEY")
        if response.status_code == 404:
            return None
        if not response.ok:
            raise EnvironmentProblem(f"{where}: {method} {path} answered HTTP {response.status_code}: "
                                     f"{' '.join(response.text.split())[:200]}")
        return response.json() if response.content else {}

    def check(self) -> str:
        """Who the token belongs to (raises EnvironmentProblem when unreachable or refused)."""
        me = self._call("GET", "/api/current-user/whoami")
        return (me or {}).get("email") or (me or {}).get("username") or "?"

    def ensure_project(self, project_id: int | None, title: str, label_names: list[str]) -> int:
        """The task's project: `project_id` where it still exists, else a new one."""
        if project_id is not None and self._call("GET", f"/api/projects/{project_id}") is not None:
            return project_id
        created = self._call("POST", "/api/projects", json={
            "title": title, "label_config": label_config(label_names), "enable_empty_annotation": False,
            "show_skip_button": True, "description": "Rows fmops asks a person to label: fmops review pushes "
                                                     "them, and imports your answers into its gold store."})
        return int(created["id"])

    def push(self, project_id: int, rows: pd.DataFrame, round_: int, model_version: str | None) -> list[int]:
        """One task per row (data: text, reason, fmops_id, fmops_round, kind), the specialist's prediction as a
        pre-annotation; returns the Label Studio task ids in row order."""
        tasks = [{"data": {"text": r.text, "reason": r.reason, "fmops_id": str(r.id), "fmops_round": round_,
                           "kind": r.kind, "current_label": r.current_label if isinstance(r.current_label, str) else ""},
                  "predictions": [{"model_version": f"specialist v{model_version}" if model_version else "fmops",
                                   "score": float(r.confidence),
                                   "result": [{"from_name": CHOICES, "to_name": "text", "type": "choices",
                                               "value": {"choices": [r.prediction]}}]}]}
                 for r in rows.itertuples()]
        if not tasks:
            return []
        answer = self._call("POST", f"/api/projects/{project_id}/import?return_task_ids=true", json=tasks)
        return [int(t) for t in answer.get("task_ids", [])]

    def annotations(self, project_id: int) -> list[Annotation]:
        """Every submitted annotation of the project (skipped ones left out), oldest first."""
        exported = self._call("GET", f"/api/projects/{project_id}/export", params={"exportType": "JSON"})
        if exported is None:
            raise EnvironmentProblem(f"Label Studio at {self.url}: project {project_id} is gone")
        users = {u["id"]: u.get("email") or u.get("username") for u in (self._call("GET", "/api/users") or [])}
        out = []
        for task in exported:
            data = task.get("data", {})
            for a in task.get("annotations", []):
                if a.get("was_cancelled"):
                    continue
                chosen = [c for r in a.get("result", []) if r.get("from_name") == CHOICES
                          for c in r.get("value", {}).get("choices", [])]
                out.append(Annotation(
                    row_id=str(data.get("fmops_id")), label=chosen[0] if len(chosen) == 1 else None,
                    annotator=users.get(a.get("completed_by"), f"user {a.get('completed_by')}"),
                    labelled_at=a.get("updated_at") or a.get("created_at") or "", round=data.get("fmops_round"),
                    source="label_studio", source_key=f"ls:{self.url}:{project_id}:{a['id']}:{a.get('updated_at')}",
                    where=f"Label Studio task {task['id']} (annotation {a['id']})", text=data.get("text")))
        return sorted(out, key=lambda a: a.labelled_at)
