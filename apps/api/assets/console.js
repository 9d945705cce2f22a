// Progressive enhancement only: every page works without it.
// Copy buttons: <button data-copy="ID"> copies the value of the input with that id.
document.addEventListener("click", (e) => {
  const b = e.target.closest("button[data-copy]");
  if (!b) return;
  e.preventDefault();
  const input = document.getElementById(b.dataset.copy);
  if (!input) return;
  input.select();
  const done = () => { b.textContent = "Copied"; setTimeout(() => { b.textContent = "Copy"; }, 1500); };
  if (navigator.clipboard) navigator.clipboard.writeText(input.value).then(done, () => document.execCommand("copy") && done());
  else if (document.execCommand("copy")) done();
});
// Confirmations: <form data-confirm="text"> asks before submitting (the server's confirmation
// page is the no-script path).
document.addEventListener("submit", (e) => {
  const f = e.target.closest("form[data-confirm]");
  if (f && !window.confirm(f.dataset.confirm)) e.preventDefault();
});
