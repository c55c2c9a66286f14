// A view's read: its answer, whether it is waiting for the user's own latest writes (the
// badge's "updating…"), its error, and its commands, each followed by a read again.
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
  /** Sends a command, then reads again (with the command's token: the user sees it). A
   *  refusal goes to `failed`, by default the view's error. Says whether it was accepted. */
  const act = async (send: () => Promise<unknown>, failed: (e: unknown) => void = setError): Promise<boolean> => {
    setError(null);
    try {
      await send();
    } catch (e) {
      failed(e);
      return false;
    }
    await reload();
    return true;
  };
  return { answer, updating, error, setError, reload, act };
}
