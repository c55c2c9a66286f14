// My tasks: open ones, overdue first; complete one.
import type { Api } from "../api";
import { useAnswer } from "../answer";
import { Alert } from "../problem";
import { StalenessBadge } from "../staleness";

type Task = { id: string; subject: string; about: string; about_id: string; due_date: string | null; overdue: boolean; version: number };

export function Tasks({ api }: { api: Api }) {
  const { answer, updating, error, setError, act } = useAnswer(() => api.query<Task[]>("/v1/tasks/mine"), [api]);
  // The server lists the most urgent first; overdue ones lead, whatever it says.
  const tasks = answer && [...answer.data].sort((a, b) => Number(b.overdue) - Number(a.overdue));

  const complete = (task: Task) => act(() => api.command(`/v1/activities/${task.id}/complete`, {}, task.version));

  return (
    <section aria-labelledby="tasks-title">
      <header class="view-header">
        <h1 id="tasks-title">My tasks</h1>
        <StalenessBadge staleness={answer?.staleness} updating={updating} />
      </header>
      {error !== null && <Alert error={error} onDismiss={() => setError(null)} />}
      {tasks?.length === 0 && <p>No open tasks.</p>}
      <ul class="tasks">
        {tasks?.map((task) => (
          <li key={task.id} class={task.overdue ? "overdue" : ""} data-testid="task">
            <span>
              {task.subject} · due {task.due_date ?? "—"}
              {task.overdue && <strong> · overdue</strong>}
              {task.about === "opportunity" && (
                <>
                  {" · "}
                  <a href={`#/opportunities/${task.about_id}`}>the deal</a>
                </>
              )}
            </span>
            <button type="button" onClick={() => complete(task)}>
              Complete<span class="visually-hidden"> {task.subject}</span>
            </button>
          </li>
        ))}
      </ul>
    </section>
  );
}
