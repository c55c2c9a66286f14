import { render } from "preact";
import { loadConfig } from "./api";
import { App } from "./app";
import "./style.css";

const root = document.getElementById("app")!;
loadConfig().then(
  (config) => render(<App config={config} />, root),
  (e) => render(<p role="alert">The console cannot start: {String(e)}</p>, root),
);
