// A view's read: its answer, whether it is waiting for the user's own latest writes (the
// badge's "updating…"), its error, and a way to read again after a command.
import { useCallback, useEffect, useState } from "preact/hooks";
import { waitsForWrites, type Answer } from "./api";

export function useAnswer<T>(read: () => Promise<Answer<T>>, deps: unknown[]) {
  const [answer, setAnswer] = useState<Answer<T>>();
  const [updating, setUpdating] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const reload = useCallback(async () => {
    setUpdating(waitsForWrites());
    try {
      setAnswer(await read());
    } catch (e) {
      setError(e);
    } finally {
      setUpdating(false);
    }
  }, deps);
  useEffect(() => {
    void reload();
  }, [reload]);
  return { answer, updating, error, setError, reload };
}
