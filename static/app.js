// The site's only script of its own, loaded from this origin (the Content-Security-Policy
// allows no inline script and no eval). htmx does the rest from attributes.
"use strict";

// Polling regions marked data-poll-visible (the runs table) skip their request while the tab is
// hidden; htmx keeps the timer going, so polling resumes when the tab is shown again.
document.addEventListener("htmx:beforeRequest", (event) => {
  const elt = event.detail && event.detail.elt;
  if (elt && elt.hasAttribute("data-poll-visible") && document.visibilityState !== "visible") {
    event.preventDefault();
  }
});
